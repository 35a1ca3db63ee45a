"""Training jobs whose exported weights become new archive versions.

The flow runs one way (STYLE.md): data (`data.py`) -> train (`lora.py`, `fast_style.py`)
-> export weights in the format the server loads -> archive a new version with the run's
lineage (`publish.py`) -> deploy (operations/deploy.py). `evaluate.py` scores a deployed version
with CLIP. Every run keeps its resolved config, metrics and checkpoints in `runs/<run_id>/`.
"""
