"""Trajectories around gradient descent at the edge of stability (paper 003, Damian, Nichani & Lee 2023).

``constrained``: the projected-gradient (PGD) trajectory θ† on the stable set, eq. (2);
``predicted``: deviation coordinates and the predicted dynamics (eqs. (3)-(6), App. C/F, Theorem 1);
``flow``: the gradient-flow reference trajectory, and its limit θ* (the projection onto the minimizers of
paper 000 App. E.5).
"""
