"""The tools that make a bundle (train.py, package.py): never shipped, never imported by serving."""
