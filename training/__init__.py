"""Training jobs whose exported weights become new archive versions.

The flow runs one way (STYLE.md): data -> train -> export weights in the format the server
loads -> archive a new version with the run's lineage (`publish.py`) -> deploy
(operations/deploy.py). Both jobs have the same shape, one package each with
config.py / data.py / train.py / cli.py: `lora/` (SD 1.5 LoRA for animals and txt2img) and
`fast_style/` (a TransformerNet per style). What they share sits beside them: `images.py`
(reading images), `runs.py` (the run folder, `TrainedRun`, `lineage_of`), `checkpoints.py`
(resume, Ctrl-C), `metrics.py`, `schedule.py`, `job_cli.py` (the common command-line flow).
`evaluate.py` scores a deployed version with CLIP (`clip_score.py`). Every run keeps its
resolved config, metrics and checkpoints in `runs/<run_id>/`.
"""
