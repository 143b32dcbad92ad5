"""Neural architecture search, NASNet-style, in parts that do one job each (as in DARTS and NNI):

- search space: `ops` (candidate operations), `genotype` (a cell as a value), `cells` (genotype -> module);
- strategy: `strategy` (ask/tell), built on `controller` (LSTM policy) and `reinforce` (its update),
  or uniform random sampling;
- evaluator: `evaluators` over `supernet` (shared weights, ENAS) or training children from scratch (NASNet);
- `search` runs a strategy against an evaluator under a time budget; `plots` draws cells.

Importing `nasfer.nas` loads nothing: torch comes in only when a submodule is used.
"""
