"""augkit plugin ``samplers``: index samplers and item-frequency estimators.

Samplers (attrs, frozen) yield ``LongTensor`` index batches from ``batches(generator)``:
``uniform_items`` (endless uniform item batches for the self-supervised task) and
``interactions`` (one shuffled epoch of interaction rows). Frequency estimators
(``torch.nn.Module``) expose ``update(ids)`` and ``log_prob(ids)`` for logQ correction:
``count`` (exact counts) and ``streaming`` (Yi et al., RecSys 2019). `mixture_log_q` is the
candidate distribution of mixed negative sampling (in-batch plus uniform items). Build any of them with
``augkit.get_registry().create("sampler", "uniform_items", {"num_items": 1000, "batch_size": 256})``.
"""

from augkit import hookimpl
from augkit_samplers.count import CountFrequency
from augkit_samplers.interactions import InteractionSampler
from augkit_samplers.mixture import mixture_log_q
from augkit_samplers.streaming import StreamingFrequency
from augkit_samplers.uniform import UniformItemSampler

__all__ = ["CountFrequency", "InteractionSampler", "StreamingFrequency", "UniformItemSampler", "mixture_log_q"]


@hookimpl
def augkit_register_samplers(register):
    for sampler in (UniformItemSampler, InteractionSampler, CountFrequency, StreamingFrequency):
        register(sampler.name, sampler)
