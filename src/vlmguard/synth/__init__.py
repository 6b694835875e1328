"""Synthesis of the rewriter's training data: seeds -> three teacher stages -> SFT rows.

Modules: ``seeds`` and ``loaders`` (inputs; the bundled benchmarks are read by eval's readers),
``typography`` (typographic seed images), ``responses`` (response collection), ``teacher_stage`` and
``stages`` (hindsight, causal, optimize), ``stage_common`` and ``call_context`` (what stages share),
``verify`` (optional target checks), ``store`` (durable, resumable event log), ``run_folder`` (a run's
files), ``pipeline`` and ``record_workers`` (concurrent runs), ``progress`` (the progress bar),
``status`` (counts of a run), ``export`` (TRL rows and dataset card), ``standin`` (the offline
stand-in teacher). See ``docs/synthesis.md``.
"""
