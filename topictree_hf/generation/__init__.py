"""Sample generation: formats, prompt templates, allocation over leaves, batched validated generation."""
