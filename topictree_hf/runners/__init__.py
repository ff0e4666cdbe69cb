"""Runners: WHERE the work of a stage runs (runners/base.py `Runner`); what the stages do is
`topictree_hf.pipeline`'s, the same for every runner.

    local   (default) one process, one engine: `LocalRunner` (runners/local.py); vLLM's own tensor
            parallel covers one multi-GPU box, and the `openai` backend covers a fleet of servers.
    ray     a pool of Ray actors, one engine each for the whole stage (vLLM on GPU nodes, vLLM's CPU
            build or transformers on CPU nodes), one journal shard per block of tasks: `RayRunner`
            (runners/ray_runner.py, runners/ray_pool.py, extra `ray`).

`open` opens the one a command asks for (`RunnerChoice`, the CLI's `--runner`); `blocks` holds
what a worker needs to journal a block of tasks on its own; it does not import Ray.
"""
