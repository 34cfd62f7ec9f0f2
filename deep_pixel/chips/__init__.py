"""The chips folder, the hand-over from Export Training Data to Train Model: writer and reader."""
