"""Data-set preparation: SIDD training patches, the flat GoPro layout, the offline lite data sets."""
