"""``python -m sepbook.results``: see :func:`sepbook.results.main`."""
from sepbook.results import main

main()
