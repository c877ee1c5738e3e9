"""vdwgen web app (Streamlit): entry point app.py, one file per page in pages/."""
