"""Where rows come from: in-memory lists, or files on object storage read as a stream."""
