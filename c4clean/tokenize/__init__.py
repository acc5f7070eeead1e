"""SentencePiece vocabulary training and encoding of text shards into token shards."""
