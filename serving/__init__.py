"""The function's code: everything here ships in archive.zip, beside main.py and the model's files."""
