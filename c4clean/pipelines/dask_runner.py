"""`--runner dask`: Beam's DaskRunner (a Beam graph as dask bags on a dask.distributed cluster),
with the defects of Beam 2.77's translation that lose or mix data fixed here.

Beam's DaskRunner, as shipped, on the pipeline below (reproduced in tests/test_pipeline_dask.py):

    class Two(beam.DoFn):
        def process(self, x):
            yield x
            yield beam.pvalue.TaggedOutput("side", -x)
        def finish_bundle(self):
            yield GlobalWindows.windowed_value(100)
    outs = p | beam.Create(range(10)) | beam.ParDo(Two()).with_outputs("side", main="main")
    outs.main | "A" >> beam.Map(write_a); outs.side | "B" >> beam.Map(write_b)

1. What a DoFn emits from `finish_bundle` is dropped (the outputs are read before it is called):
   `100` never arrives, and `BatchElements` (c4clean's batched language id) loses pages.
2. The outputs of a multi-output ParDo are not told apart: `outs.side` holds main outputs too.
3. Only the branch of the last transform visited is computed: `write_a` never runs (c4clean's
   pipeline ends in two branches, the shards and the counts, and near-dedup has a counting leaf).
4. A DoFn instance and its receivers may be shared by the partitions one worker runs.

`C4DaskRunner` replaces the ParDo translation (fresh DoFn and receivers per partition, outputs
read after `finish_bundle`, each consumer gets only its own tag) and computes every leaf, drained
on the workers. `Create` gets one partition per element (up to `MAX_PARTITIONS`) unless
`--dask_npartitions`/`--dask_partition_size` says otherwise: c4clean creates one element per input
file, and a bag's groupby keeps its input's partition count.

A worker that dies is replaced and its tasks rerun by dask; every step of c4clean is a function of
its input and writes atomically, so the output stays the same (after 3 deaths of one task dask gives
up and the run fails, with the error named).
"""

from __future__ import annotations

import logging

from apache_beam import pvalue
from apache_beam.internal import pickler
from apache_beam.pipeline import PipelineVisitor
from apache_beam.runners.dask import transform_evaluator as te
from apache_beam.runners.dask.dask_runner import DaskOptions, DaskRunner, DaskRunnerResult

log = logging.getLogger(__name__)

MAX_PARTITIONS = 256


def _run_dofn(items, pickled_fn, label, window_fn, args, kwargs, side_views, *side_values):
    """One partition as one bundle: setup, start, process, finish, teardown; every output kept.
    Side input i is `side_views[i]` (view class, options, window mapping) over `side_values[i]`."""
    from apache_beam import DoFn
    from apache_beam.runners.common import DoFnContext, DoFnInvoker, DoFnSignature, _OutputHandler
    from apache_beam.transforms.sideinputs import SideInputMap

    fn = pickler.loads(pickled_fn)
    side_inputs = [
        SideInputMap(view, options, [te.get_windowed_value(v, mapping) for v in values])
        for (view, options, mapping), values in zip(side_views, side_values)
    ] or None
    receivers = te.OneReceiver()
    handler = _OutputHandler(
        window_fn=window_fn,
        main_receivers=receivers[None],
        tagged_receivers=receivers,
        per_element_output_counter=None,
        output_batch_converter=None,
        process_yields_batches=False,
        process_batch_yields_elements=False,
    )
    invoker = DoFnInvoker.create_invoker(
        DoFnSignature(fn),
        handler,
        context=DoFnContext(label, state=None),
        side_inputs=side_inputs,
        input_args=list(args),
        input_kwargs=kwargs,
        user_state_context=None,
        bundle_finalizer_param=DoFn.BundleFinalizerParam(),
    )
    invoker.invoke_setup()
    invoker.invoke_start_bundle()
    for item in items:
        invoker.invoke_process(item)
    invoker.invoke_finish_bundle()
    invoker.invoke_teardown()
    # Plain values, as Beam's translation gives them; tagged ones keep their tag (for `_select`).
    return [
        pvalue.TaggedOutput(v.tag, v.value.value) if isinstance(v, pvalue.TaggedOutput) else v.value
        for v in receivers.values
    ]


def _concat(parts) -> list:
    return [v for part in parts for v in part]


class _ParDo(te.DaskBagOp):
    def apply(self, input_bag, side_inputs=None):
        """`side_inputs`: [(view class, options, window mapping, bag)], each passed whole to every
        partition (Beam's translation computes a bag inside a task instead, which can deadlock a
        cluster of one-thread workers)."""
        side_inputs = side_inputs or []
        side_views = tuple(view[:3] for view in side_inputs)
        side_values = [view[3].reduction(list, _concat) for view in side_inputs]
        transform = self.transform
        args, kwargs = transform.raw_side_inputs
        main_input = next(iter(self.applied.main_inputs.values()))
        window_fn = main_input.windowing.windowfn if hasattr(main_input, "windowing") else None
        return input_bag.map(te.get_windowed_value, window_fn).map_partitions(
            _run_dofn,
            pickler.dumps(transform.fn),
            transform.label,
            window_fn,
            tuple(args),
            kwargs,
            side_views,
            *side_values,
            token=f"{transform.label}-{id(self.applied)}",  # the step's name on the dashboard
        )


class _Create(te.DaskBagOp):
    def apply(self, input_bag, side_inputs=None):
        import dask.bag as db

        items = list(self.transform.values)
        kwargs = {k: v for k, v in self.bag_kwargs.items() if k in ("npartitions", "partition_size")}
        if not kwargs:
            kwargs["npartitions"] = max(1, min(len(items), MAX_PARTITIONS))
        return db.from_sequence(items, **kwargs)


def _key(item):
    return item[0]


def _value(item):
    key, values = item
    return key, [te.defenestrate(v[1]) for v in values]


class _GroupByKey(te.DaskBagOp):
    """Beam's translation keeps the input's partition count, and a Flatten adds up the counts of its
    inputs: after a few joins (a CoGroupByKey is a Flatten and a group) the task graph of near-dedup
    grows to tens of thousands of shuffle tasks. Each group here has a fixed number of partitions."""

    def apply(self, input_bag, side_inputs=None):
        partitions = self.bag_kwargs["group_partitions"]
        if input_bag.npartitions > partitions:  # a shuffle's tasks grow with its input partitions
            input_bag = input_bag.repartition(partitions)
        return input_bag.groupby(_key, npartitions=partitions, shuffle="tasks").map(_value)


def _select(partition, tag):
    """The elements of one output of a multi-output ParDo's bag (main: tag None)."""
    if tag is None:
        return [v for v in partition if not isinstance(v, pvalue.TaggedOutput)]
    return [v.value for v in partition if isinstance(v, pvalue.TaggedOutput) and v.tag == tag]


def _drain(partition) -> list[int]:
    return [sum(1 for _ in partition)]


class C4DaskRunner(DaskRunner):
    """Beam's DaskRunner with the fixes above. Without `--dask_client_address` it starts a local
    cluster of `workers` processes (one thread each: the steps are CPU-bound Python)."""

    def __init__(self, workers: int = 1):
        super().__init__()
        self._workers = workers

    def run_pipeline(self, pipeline, options):
        import dask.distributed as ddist
        from apache_beam.runners.dask.overrides import dask_overrides

        dask_options = options.view_as(DaskOptions).get_all_options(drop_default=True, current_only=True)
        bag_kwargs = DaskOptions._extract_bag_kwargs(dask_options)
        cluster = None
        if not dask_options.get("address") and not dask_options.get("scheduler_file"):
            cluster = ddist.LocalCluster(
                n_workers=self._workers, threads_per_worker=1, processes=True, dashboard_address=None
            )
            dask_options["address"] = cluster
        client = ddist.Client(**dask_options)
        # Groups get as many partitions as the cluster has threads, or as the largest Create has
        # elements (c4clean: input files) when that is more, so a group's share of a large corpus
        # stays bounded; --dask_npartitions sets it.
        largest = max((len(getattr(t, "values", ())) for t in _creates(pipeline)), default=1)
        threads = sum(client.nthreads().values())
        bag_kwargs["group_partitions"] = bag_kwargs.get("npartitions") or max(
            1, min(max(threads, largest), MAX_PARTITIONS)
        )
        pipeline.replace_all(dask_overrides())
        visitor = _BagVisitor(bag_kwargs)
        pipeline.visit(visitor)
        leaves = [bag.map_partitions(_drain) for bag in visitor.leaves()]
        # Unoptimized: dask's bag optimizations fuse a producer into each of its consumers, so a
        # ParDo with two consumers (its pages and its counts) would run twice.
        futures = client.compute(leaves, optimize_graph=False)
        return _Result(client, futures, cluster)


def _creates(pipeline) -> list:
    """The `beam.Create` transforms of a pipeline (before the Dask overrides)."""
    import apache_beam as beam

    found = []

    class Visitor(PipelineVisitor):
        def visit_transform(self, node):
            if isinstance(node.transform, beam.Create):
                found.append(node.transform)

        def enter_composite_transform(self, node):
            if isinstance(node.transform, beam.Create):
                found.append(node.transform)

    pipeline.visit(Visitor())
    return found


class _Result(DaskRunnerResult):
    def __init__(self, client, futures, cluster):
        super().__init__(client, futures)
        self._cluster = cluster

    def wait_until_finish(self, duration=None):
        from distributed.scheduler import KilledWorker

        from c4clean.pipelines.runner import RunFailed

        try:
            return super().wait_until_finish(duration)
        except KilledWorker as error:
            raise RunFailed(f"dask gave up on a task whose workers kept dying: {error}") from error
        finally:
            self.client.close()
            if self._cluster is not None:
                self._cluster.close()


class _BagVisitor(PipelineVisitor):
    """Beam's bag visitor, with the outputs of a ParDo told apart and every leaf kept."""

    def __init__(self, bag_kwargs):
        self.bag_kwargs = bag_kwargs
        self.bags = {}
        self.consumed = set()

    def _bag_of(self, pcoll):
        producer = pcoll.producer
        self.consumed.add(producer)
        bag = self.bags[producer]
        if len(producer.outputs) > 1:
            bag = bag.map_partitions(_select, pcoll.tag)
        return bag

    def visit_transform(self, node):
        from apache_beam import ParDo
        from apache_beam.runners.dask.overrides import _Create as BeamCreate
        from apache_beam.runners.dask.overrides import _GroupByKeyOnly

        translations = {**te.TRANSLATIONS, ParDo: _ParDo, BeamCreate: _Create, _GroupByKeyOnly: _GroupByKey}
        op_class = translations.get(node.transform.__class__, te.NoOp)
        op = op_class(node, bag_kwargs=self.bag_kwargs)
        kwargs = {"input_bag": None, "side_inputs": None}
        inputs = [v for v in node.inputs if not isinstance(v, pvalue.PBegin)]
        if inputs:
            bags = [self._bag_of(v) for v in inputs]
            kwargs["input_bag"] = bags[0] if len(bags) == 1 and not isinstance(op, te.Flatten) else bags
        if node.side_inputs:
            if not isinstance(op, _ParDo):
                raise RuntimeError(f"{node.full_label}: Beam's Dask runner takes side inputs on a ParDo only")
            kwargs["side_inputs"] = [
                (type(si), si._view_options(), si._window_mapping_fn, self._bag_of(si.pvalue))
                for si in node.side_inputs
            ]
        self.bags[node] = op.apply(**kwargs)

    def leaves(self):
        return [bag for node, bag in self.bags.items() if node not in self.consumed and bag is not None]
