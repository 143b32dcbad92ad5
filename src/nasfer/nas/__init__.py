"""Neural architecture search in parts that do one job each (as in NNI, Optuna and Ray Tune):

- search spaces, declared (`space`: `Decision`s + decode/encode/model): `nasnet_space` (the design's
  NASNet cells: `ops`, `genotype`, `cells`) and `macro` (MnasNet-style stages; VGG and mini-Xception are
  points of it; the network is `nasfer.models.macro`);
- strategies behind one ask/tell interface (`strategy`, documented there for Ray Tune): `reinforce`
  (`controller` LSTM + batched REINFORCE, `reinforce`), `random`, `evolution` (regularized evolution);
- fidelities and the child trainer (`fidelity`), successive halving (`scheduler`, ASHA), the ONNX
  Runtime latency and MnasNet objective (`latency`), the data split (`data`);
- `search` runs it all under a wall-clock budget, resumably; `results` ranks, writes the Pareto archive;
- `supernet` + `evaluators`: the shared-weight (ENAS) evaluator, kept as a library piece, not used by
  `nasfer search` (it did not learn on FER2013 within a CPU budget); `plots` draws cells.

Importing `nasfer.nas` loads nothing: torch comes in only when a submodule is used.
"""
