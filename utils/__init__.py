"""What every script shares (errors, cli, config, registry, device, file and image I/O, metrics, losses,
schedulers and optimizers, checkpoints, AMP), and the rooms built on it: engine/ (training), deploy/ (export,
runners, the restoration loop, benchmarks), dmsp/ (the DMSP solver), weights/ (official checkpoint readers)."""
