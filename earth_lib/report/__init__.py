"""What people read, drawn and written at the edge from returned results.

``plotting`` (every figure, drawn from returned results) and ``tables``
(tables and the README's and docs' generated blocks, from run folders and records).

Importing this package loads nothing; each module is imported by name.
"""
