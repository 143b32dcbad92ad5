"""`SearchConfig`: the flags of `nasfer search`, kept torch-free so building the CLI never imports torch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..config import option


@dataclass
class SearchConfig:
    """Everything `nasfer search` needs; the proxy settings (image size, F, N, subset) trade fidelity for steps."""

    data: str = option("", "dataset path (zip, folder or fer2013.csv); only its Training part is read")
    out: str = option("runs/search", "output directory; an existing search there is resumed")
    budget_minutes: float = option(60.0, "wall-clock budget of the search loop (re-scoring adds a little)")
    strategy: Literal["reinforce", "random", "reinforce-full"] = option(
        "reinforce", "reinforce: controller + shared weights (ENAS); random: uniform sampling, same budget "
                     "(control); reinforce-full: controller, each child trained from scratch (NASNet)")
    evaluator: Literal["auto", "shared", "scratch"] = option(
        "auto", "how a child is scored: shared (supernet weights, ENAS), scratch (trained from scratch for "
                "--child-steps, NASNet); auto: scratch for reinforce-full, else shared. `--strategy random "
                "--evaluator scratch` is the same-budget control of reinforce-full")
    subset: int = option(0, "training images for the weights, a stratified subset (0: all of Training but "
                            "the held-out part; a step costs the same either way, more images overfit less)")
    val_size: int = option(2000, "images held out of Training for rewards and the final re-scoring")
    image_size: int = option(32, "proxy image size: faces are resized to this for the search")
    F: int = option(8, "proxy filters of the first stack (doubles after each reduction)", flag="--filters")
    N: int = option(1, "proxy normal cells per stack", flag="--cells")
    B: int = option(5, "blocks per cell", flag="--blocks")
    batch_size: int = option(64, "batch size of shared-weight (and from-scratch) training")
    eval_batch: int = option(128, "validation images per reward")
    shared_lr: float = option(0.05, "peak SGD learning rate of the shared weights (cosine over the budget)")
    shared_steps: int = option(50, "shared-weight training steps per epoch")
    controller_lr: float = option(3.5e-3, "Adam learning rate of the controller")
    controller_steps: int = option(20, "controller updates per epoch (each scores one sampled child)")
    entropy_weight: float = option(1e-4, "entropy bonus of the policy loss")
    baseline_decay: float = option(0.95, "decay of the moving-average reward baseline")
    temperature: float = option(5.0, "controller softmax temperature")
    tanh_constant: float = option(2.5, "controller logit clipping: c * tanh(logits)")
    child_steps: int = option(300, "scratch evaluator: steps of each child trained from scratch")
    child_optimizer: Literal["adam", "sgd"] = option(
        "adam", "scratch evaluator: optimizer of each child (Adam leaves FER2013's class-prior plateau in "
                "fewer steps than SGD, so short runs rank children instead of all scoring the majority class)")
    child_lr: float = option(3e-3, "scratch evaluator: peak learning rate of each child (cosine to 0)")
    child_augment: bool = option(False, "scratch evaluator: augment the children's batches (crop, flip); off by "
                                        "default, since in a few hundred steps augmentation only slows learning")
    target_ms: float = option(0.0, "latency-aware reward: target ms per face of the default `nasnet` "
                                   "built from the child (0: accuracy only)")
    latency_w: float = option(-0.07, "latency-aware reward exponent w in acc * (lat / target) ** w")
    top_k: int = option(5, "genotypes re-scored on the whole validation part at the end")
    max_steps: int = option(0, "also stop after this many controller steps (0: only the time budget)")
    seed: int = option(0, "random seed (split, weights, sampling)")
    threads: int = option(0, "torch CPU threads (0: torch's default)")
    progress: bool = option(True, "show a progress bar")
