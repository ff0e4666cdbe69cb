"""The datasets builder that packages a run dir, re-exported from the installed package.

datasets >= 4 no longer loads builder scripts, so the builder lives in
`topictree_hf.dataset.builder` and is imported, never loaded by path:

    from builders import TopicTreeBuilder
    builder = TopicTreeBuilder(run_dir="runs/historical-events", cache_dir="/tmp/topictree-cache")
    builder.download_and_prepare()
    ds = builder.as_dataset()

`topictree build` (topictree_hf.dataset.build_dataset) uses the same builder and also writes the
Hub layout (card, data/*.parquet, tree, config) that `load_dataset(folder)` reads.
"""

from topictree_hf.dataset.builder import TopicTreeBuilder, TopicTreeBuilderConfig

__all__ = ["TopicTreeBuilder", "TopicTreeBuilderConfig"]
