"""Dataset card templates (Jinja), shipped as the package data of `topictree_hf.dataset_cards`.

This folder is mapped to that package name in pyproject.toml; read a template with
`importlib.resources.files("topictree_hf.dataset_cards").joinpath("dataset_card.md.jinja")`.
"""
