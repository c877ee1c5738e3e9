"""Services: the product's flows, one implementation each, shared by the CLI and the app.

- :mod:`services.generation`: generate -> score -> store (:func:`~services.generation.generate_and_store`),
  or generate -> score without a store (:func:`~services.generation.generate_and_score`);
- :mod:`services.verification`: check stored candidates with the oracle and store each verdict.

Neither the CLI (``vdwgen``) nor the app (``webapp``) imports the other; both sit on these.
"""
