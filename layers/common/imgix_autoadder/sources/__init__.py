"""The product's imgix Sources: which Sources a key belongs to, their specs, the managed Source."""
