"""c4clean: Common Crawl WET dumps to a clean C4-style corpus, and the span-corruption T5 trained on it."""

__version__ = "0.1.0"
