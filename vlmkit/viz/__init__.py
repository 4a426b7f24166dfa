"""Figures for the workbook (plotly). Every function returns a ``go.Figure`` with labelled axes,
a legend and a title; :func:`save_figure` writes offline HTML and PNG when possible."""

from .distributions import (fig3_figure, pair_type_histogram_figure, pair_types, reliability_figure,
                            similarity_histogram, uncertainty_figure)
from .embeddings import embedding_figure, gap_bar_figure, gap_shift_figure, project_embeddings, subsample_pairs
from .gallery import (Explorer, Thumbs, embedding_examples_html, embedding_explorer, false_negative_gallery_html,
                      false_negative_table, neighbours_html, query_picker, query_results_html, query_table, show_html,
                      slerp_explorer, slerp_path_html, slerp_path_table)
from .images import false_negative_captions_html, image_grid_html, thumbnail_uri
from .io import display_bundle, png_available, save_figure
from .mixing import hardness_figure, slerp_path_figure
from .tables import table_figure, table_html
from .training import training_curves

__all__ = ["embedding_figure", "gap_bar_figure", "gap_shift_figure", "project_embeddings", "subsample_pairs",
           "fig3_figure", "pair_type_histogram_figure", "pair_types", "reliability_figure", "similarity_histogram",
           "uncertainty_figure", "hardness_figure", "slerp_path_figure", "table_figure", "table_html", "display_bundle",
           "png_available", "save_figure", "false_negative_captions_html", "image_grid_html", "thumbnail_uri",
           "Explorer", "Thumbs", "embedding_examples_html", "embedding_explorer", "false_negative_gallery_html",
           "false_negative_table", "neighbours_html", "query_picker", "query_results_html", "query_table", "show_html",
           "slerp_explorer", "slerp_path_html", "slerp_path_table", "training_curves"]
