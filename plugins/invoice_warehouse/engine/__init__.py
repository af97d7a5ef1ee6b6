"""The generic extraction engine. It names no provider: providers/*.py describe them declaratively."""
