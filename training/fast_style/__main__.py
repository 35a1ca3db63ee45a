from training.fast_style.cli import main

main()
