"""The steps of a training run, each a module with one job; `nasfer.train.fit` strings them together.

    data.py      load the dataset, plan the split (train/val/test roles), the tensors of each part
    model.py     build the network from scratch or start it from a checkpoint (fine-tuning)
    optim.py     optimizer, learning-rate schedule, weight EMA, loss weights
    precision.py the autocast precision (--precision auto: bf16 only where the hardware computes it natively)
    checks.py    what a run may be, before any work: inputs, a new run's folder, what a resumed run may change
    loop.py      one epoch of optimisation and the validation scores (batches, augmentation, mixup,
                 distillation targets, data-parallel sharding)
"""
