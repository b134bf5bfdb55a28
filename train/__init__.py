"""fairforge.train (the `train/` folder): the multi-task detector with SAM under Accelerate.

Entry points: `accelerate launch train/run.py --config C` (or `fairforge train --config C`) and
`fairforge train predict --checkpoint RUN --manifest M --out P.parquet`. Modules, one job each:
`run` (the loop), `methods/` (the registry; per method its module and its torch-free settings
module; contract in methods/base.py), `updates/` (plain / SAM / efficient SAM update rules, one
module each), `sam` (the SAM optimizer), `detector` + `backbones` (the model), `data` +
`sampling` + `augment` (manifests -> batches), `optim` (optimizer, schedule), `validate`
(per-epoch metrics through fairforge.evaluate), `checkpoint` (state, exports, model card),
`predict` (the predictions file evaluate reads).
"""
