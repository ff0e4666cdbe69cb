"""Runners: where the sample work runs once the tree is built.

    local   (default) one process, one engine: `pipeline.generate_stage`; vLLM's own tensor parallel
            covers one multi-GPU box, and the `openai` backend covers a fleet of servers.
    ray     a Ray Data actor pool, one engine per actor (vLLM on GPU nodes, transformers on CPU nodes),
            one journal shard per block of tasks: `topictree_hf.runners.ray_runner` (extra `ray`).

`blocks` holds what a runner needs to journal a block of tasks on its own; it does not import Ray.
"""

RUNNERS = ("local", "ray")
