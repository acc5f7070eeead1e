"""T5 v1.1 model, span corruption, memory-mapped loader, trainer and ablations."""
