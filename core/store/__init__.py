"""The synthetic store: generated (or imported) images on disk, sharded, checksummed, resumable.
"""
