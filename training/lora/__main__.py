from training.lora.cli import main

main()
