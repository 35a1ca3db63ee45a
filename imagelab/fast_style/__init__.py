"""Feed-forward style transfer (Johnson, Alahi and Fei-Fei 2016)."""
