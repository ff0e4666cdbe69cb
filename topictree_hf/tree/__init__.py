"""The topic tree: model (ids, paths, stats), level-synchronous builder, cleaning, import/export, pictures."""
