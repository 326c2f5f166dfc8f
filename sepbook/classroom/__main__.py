"""``python -m sepbook.classroom``: see :func:`sepbook.classroom.main`."""
from sepbook.classroom import main

main()
