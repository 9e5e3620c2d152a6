"""TorchRec backend for augkit's towers (the optional ``torchrec`` extra).

* `augkit.torchrec.convert`: `FeatureBatch` <-> ``KeyedJaggedTensor``, masks as bag lengths.
* `augkit.torchrec.towers`: `TorchRecTowers`, the two towers with their id tables in one
  ``EmbeddingBagCollection`` and converters from and to the native towers.
* `augkit.torchrec.sharding`: `shard`, tables sharded by TorchRec's planner with a fused FBGEMM
  optimizer, the rest data-parallel; the full state of a sharded model.

Importing this package, or any of its modules, does not load torchrec or fbgemm_gpu: they are
imported inside the functions that need them, so the trainer can import this package at top
level and the extra stays optional.
"""
