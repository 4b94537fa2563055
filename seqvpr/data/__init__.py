"""All file IO for traverses: the generic traverse format, the Oxford RobotCar reader,
the sequence-pair builder, the synthetic street world and the torch ``Dataset``.

Modules (import what you need; this package imports nothing heavy itself):

- :mod:`seqvpr.data.traverse`: :class:`~seqvpr.data.traverse.Traverse` and the generic
  on-disk format (``traverse.csv`` + images);
- :mod:`seqvpr.data.geo`: UTM/lat-lon conversion, pose interpolation, path length;
- :mod:`seqvpr.data.robotcar`: reading raw RobotCar traverses;
- :mod:`seqvpr.data.prepare`: preprocessing them into the generic format;
- :mod:`seqvpr.data.pairs`: building reference/query sequence pairs (pure numpy);
- :mod:`seqvpr.data.pair_files`: splits, the pairs CSV, the ``seqvpr pairs`` step;
- :mod:`seqvpr.data.dataset`: ``SequencePairDataset`` (torch);
- :mod:`seqvpr.data.synth`: the synthetic street world (``seqvpr synth``).

Conventions: positions are UTM (easting, northing) metres with the zone beside them;
times are float seconds; headings are ENU radians (counter-clockwise from east).
"""
