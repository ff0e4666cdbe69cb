"""Sample generation: formats, prompt templates, allocation over leaves, streamed validated generation."""
