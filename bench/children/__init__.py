"""Programs the bench runs in a process of their own, so that what they measure (a cold
start, a process's peak memory) is theirs alone. Each runs by path, as
`python bench/children/<name>.py ...`, and prints one JSON line."""
