"""What a run leaves behind and how it is read: the run folder and its typed records, the baseline
cache, scoring (the objective), atomic writes."""
