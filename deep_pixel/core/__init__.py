"""What every step shares: errors, progress and cancellation, device choice, parameter
declarations, the class schema, the network input transform, metrics and tile geometry."""
