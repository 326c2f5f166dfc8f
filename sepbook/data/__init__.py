"""Layer 2, data: the synthesiser and its SoundFonts, the real sets' folder layouts, datasets of excerpts, the
generated corpora, and the profiles (the settings of every chapter at each size)."""
