"""What a run writes and reads on disk: crash-safe writes, checkpoints and the settings that made
them, and checks on what a run reads (sha256, completeness, disk space).
"""
