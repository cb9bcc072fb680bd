def start_inprocess_worker():
    pass
