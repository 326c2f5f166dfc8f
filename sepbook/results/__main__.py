"""``python -m sepbook.results CHAPTER``: see :func:`sepbook.results.make.main`."""
from sepbook.results.make import main

main()
