"""The benchmark and ablation harness: suites, runner, results store, reporting."""
