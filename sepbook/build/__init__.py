"""Layer 7, building the book: executing notebooks before the build, the Sphinx extension, the browser check."""
