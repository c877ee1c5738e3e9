"""The Streamlit app: ``app.py`` (navigation) and one file per page in ``views/``.

The folder is not called ``pages/``: Streamlit would then also build its own file-name navigation,
which a deep link such as ``/candidates`` opens without ``app.py``. Pages are thin shells over
:mod:`services`, :mod:`serving` and :mod:`store`; they show stored records and never score a crystal
themselves. :mod:`webapp.background` runs a generation in a thread that outlives the page;
:mod:`webapp.run_results` turns a stored run into the page's table and files. The app never imports
``training`` or the CLI.
"""
