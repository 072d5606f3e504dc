"""Growth engine: growable residual networks and layer-insertion methods (torch and numpy only)."""
