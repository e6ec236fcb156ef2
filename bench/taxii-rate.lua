-- wrk script: the URL given to wrk, paced by bench/taxii-pace.lua (RATE_PER_THREAD).
dofile("bench/taxii-pace.lua")
