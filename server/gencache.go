package server

// genCache is a map bounded by the total cost of its entries, with
// LRU-like eviction and no per-entry bookkeeping: two generations, each
// holding up to limit; when the current one is full it becomes the
// previous one (the old previous one is dropped), and a hit in the
// previous one moves the entry forward. It does no locking: its users
// hold their own lock around every call.
type genCache[K comparable, V any] struct {
	limit     int64 // the cost one generation may hold
	cost      func(V) int64
	cur, prev map[K]V
	curCost   int64
}

// get returns the entry of k, moving it to the current generation.
func (g *genCache[K, V]) get(k K) (V, bool) {
	if v, ok := g.cur[k]; ok {
		return v, true
	}
	v, ok := g.prev[k]
	if ok {
		delete(g.prev, k)
		g.put(k, v)
	}
	return v, ok
}

// put remembers v under k unless the current generation has k already.
func (g *genCache[K, V]) put(k K, v V) {
	if _, ok := g.cur[k]; ok {
		return
	}
	n := g.cost(v)
	if g.cur == nil || g.curCost+n > g.limit {
		g.prev, g.cur, g.curCost = g.cur, make(map[K]V, len(g.cur)), 0
	}
	g.cur[k] = v
	g.curCost += n
}

// total returns the cost of every entry held, in both generations.
func (g *genCache[K, V]) total() int64 {
	n := g.curCost
	for _, v := range g.prev {
		n += g.cost(v)
	}
	return n
}
