"""Writers of tiny synthetic copies of each paper dataset's official layout (file names,
columns and value codes as distributed), with the cohort each should give."""
