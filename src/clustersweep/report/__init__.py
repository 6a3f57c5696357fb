"""What a person reads: tables of runs, markdown reports and plotly figures, for one run and for many."""
