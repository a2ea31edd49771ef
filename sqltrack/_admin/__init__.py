"""Administration: deleting and collecting, Slurm's final states, merging and syncing files."""
