"""Event clips: a short H.264 MP4 per event, from a pre-roll before it to a post-roll after it."""
