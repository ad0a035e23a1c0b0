package catalog

// Symbol is one tradable currency pair in the catalogue.
type Symbol struct {
	// Name is six uppercase letters: the base currency then the quote
	// currency, e.g. "EURUSD" (the price of one euro in US dollars).
	Name string
	// Price is a typical mid price, in units of the quote currency per unit
	// of the base currency. It seeds the simulator; it is not a live rate.
	Price float64
	// Pip is the size of one pip, the unit in which FX spreads are quoted:
	// 0.0001 for most pairs, 0.01 for JPY and HUF quotes.
	Pip float64
	// Digits is how many decimal places a quote carries (a tenth of a pip,
	// as retail and ECN venues quote).
	Digits int
	// SpreadPips is a typical ask minus bid, in pips, at a liquid hour.
	SpreadPips float64
	// Volatility is a typical annualised volatility of the mid's log
	// returns (0.07 = 7% a year). It scales the simulator's random walk.
	Volatility float64
}

// Base is the base currency, e.g. "EUR" for EURUSD.
func (s Symbol) Base() string { return s.Name[:3] }

// Quote is the quote currency, e.g. "USD" for EURUSD.
func (s Symbol) Quote() string { return s.Name[3:] }

// Spread is the typical ask minus bid in price units.
func (s Symbol) Spread() float64 { return s.SpreadPips * s.Pip }

// Typical prices are mutually consistent (EURJPY = EURUSD x USDJPY within a
// fraction of a percent, which a test checks) so that a simulated book has no
// glaring triangular arbitrage. Spreads are those of a retail ECN at a liquid
// hour; volatilities are long-run annualised figures. All are rounded: they
// make quotes look real, they are not market data.
//
// Pip sizes follow market convention: 0.01 when the quote currency is JPY or
// HUF, 0.001 for CZK, 0.0001 otherwise.
const (
	pip4 = 0.0001
	pip3 = 0.001
	pip2 = 0.01
)

// majors are the 28 pairs formed by the eight currencies of the seven USD
// majors (EURUSD GBPUSD USDJPY USDCHF AUDUSD USDCAD NZDUSD): EUR USD GBP JPY
// CHF AUD CAD NZD, 8 choose 2 = 28. The architecture calls them "the 28 pairs
// of the 7 majors"; seven currencies would make only 21 pairs, so the group is
// read as the industry's "majors and crosses": the seven majors and every
// cross between their currencies.
//
// Each pair is written the way the market quotes it, base currency first by
// the priority EUR > GBP > AUD > NZD > USD > CAD > CHF > JPY (so USDJPY, not
// JPYUSD, and NZDCAD, not CADNZD). The list is in the order traders usually
// list them: the USD majors, then the EUR, GBP, JPY, CHF and other crosses.
var majors = []Symbol{
	{Name: "EURUSD", Price: 1.0850, Pip: pip4, Digits: 5, SpreadPips: 0.6, Volatility: 0.07},
	{Name: "GBPUSD", Price: 1.2700, Pip: pip4, Digits: 5, SpreadPips: 0.9, Volatility: 0.08},
	{Name: "USDJPY", Price: 150.00, Pip: pip2, Digits: 3, SpreadPips: 0.8, Volatility: 0.10},
	{Name: "USDCHF", Price: 0.8800, Pip: pip4, Digits: 5, SpreadPips: 1.2, Volatility: 0.07},
	{Name: "AUDUSD", Price: 0.6600, Pip: pip4, Digits: 5, SpreadPips: 0.8, Volatility: 0.10},
	{Name: "USDCAD", Price: 1.3600, Pip: pip4, Digits: 5, SpreadPips: 1.2, Volatility: 0.06},
	{Name: "NZDUSD", Price: 0.6100, Pip: pip4, Digits: 5, SpreadPips: 1.2, Volatility: 0.10},
	{Name: "EURGBP", Price: 0.8543, Pip: pip4, Digits: 5, SpreadPips: 1.0, Volatility: 0.06},
	{Name: "EURJPY", Price: 162.75, Pip: pip2, Digits: 3, SpreadPips: 1.2, Volatility: 0.10},
	{Name: "EURCHF", Price: 0.9548, Pip: pip4, Digits: 5, SpreadPips: 1.5, Volatility: 0.05},
	{Name: "EURAUD", Price: 1.6439, Pip: pip4, Digits: 5, SpreadPips: 1.8, Volatility: 0.09},
	{Name: "EURCAD", Price: 1.4756, Pip: pip4, Digits: 5, SpreadPips: 1.8, Volatility: 0.07},
	{Name: "EURNZD", Price: 1.7787, Pip: pip4, Digits: 5, SpreadPips: 2.5, Volatility: 0.09},
	{Name: "GBPJPY", Price: 190.50, Pip: pip2, Digits: 3, SpreadPips: 1.8, Volatility: 0.11},
	{Name: "GBPCHF", Price: 1.1176, Pip: pip4, Digits: 5, SpreadPips: 2.0, Volatility: 0.08},
	{Name: "GBPAUD", Price: 1.9242, Pip: pip4, Digits: 5, SpreadPips: 2.2, Volatility: 0.09},
	{Name: "GBPCAD", Price: 1.7272, Pip: pip4, Digits: 5, SpreadPips: 2.5, Volatility: 0.08},
	{Name: "GBPNZD", Price: 2.0820, Pip: pip4, Digits: 5, SpreadPips: 3.0, Volatility: 0.10},
	{Name: "CHFJPY", Price: 170.45, Pip: pip2, Digits: 3, SpreadPips: 2.0, Volatility: 0.10},
	{Name: "AUDJPY", Price: 99.000, Pip: pip2, Digits: 3, SpreadPips: 1.2, Volatility: 0.12},
	{Name: "CADJPY", Price: 110.29, Pip: pip2, Digits: 3, SpreadPips: 1.6, Volatility: 0.10},
	{Name: "NZDJPY", Price: 91.500, Pip: pip2, Digits: 3, SpreadPips: 1.8, Volatility: 0.12},
	{Name: "AUDCHF", Price: 0.5808, Pip: pip4, Digits: 5, SpreadPips: 1.8, Volatility: 0.10},
	{Name: "CADCHF", Price: 0.6471, Pip: pip4, Digits: 5, SpreadPips: 2.0, Volatility: 0.08},
	{Name: "NZDCHF", Price: 0.5368, Pip: pip4, Digits: 5, SpreadPips: 2.2, Volatility: 0.10},
	{Name: "AUDCAD", Price: 0.8976, Pip: pip4, Digits: 5, SpreadPips: 1.8, Volatility: 0.08},
	{Name: "AUDNZD", Price: 1.0820, Pip: pip4, Digits: 5, SpreadPips: 2.0, Volatility: 0.06},
	{Name: "NZDCAD", Price: 0.8296, Pip: pip4, Digits: 5, SpreadPips: 2.2, Volatility: 0.09},
}

// others are the crosses and emerging-market pairs outside the majors that
// institutional clients commonly ask for: Scandinavian and central European
// currencies, emerging markets, and the Asian hubs, against USD and EUR.
// Their spreads are wide and their volatilities uneven on purpose (USDHKD and
// EURDKK are pegged, USDTRY is not), so a tier that sells them shows it.
var others = []Symbol{
	{Name: "USDSEK", Price: 10.500, Pip: pip4, Digits: 5, SpreadPips: 30, Volatility: 0.10},
	{Name: "USDNOK", Price: 10.700, Pip: pip4, Digits: 5, SpreadPips: 35, Volatility: 0.12},
	{Name: "USDDKK", Price: 6.8756, Pip: pip4, Digits: 5, SpreadPips: 12, Volatility: 0.07},
	{Name: "USDPLN", Price: 3.9500, Pip: pip4, Digits: 5, SpreadPips: 25, Volatility: 0.11},
	{Name: "USDHUF", Price: 360.00, Pip: pip2, Digits: 3, SpreadPips: 40, Volatility: 0.13},
	{Name: "USDCZK", Price: 23.000, Pip: pip3, Digits: 4, SpreadPips: 30, Volatility: 0.10},
	{Name: "USDMXN", Price: 17.100, Pip: pip4, Digits: 5, SpreadPips: 50, Volatility: 0.14},
	{Name: "USDZAR", Price: 18.500, Pip: pip4, Digits: 5, SpreadPips: 90, Volatility: 0.16},
	{Name: "USDTRY", Price: 32.000, Pip: pip4, Digits: 5, SpreadPips: 150, Volatility: 0.15},
	{Name: "USDSGD", Price: 1.3450, Pip: pip4, Digits: 5, SpreadPips: 2.5, Volatility: 0.04},
	{Name: "USDHKD", Price: 7.8200, Pip: pip4, Digits: 5, SpreadPips: 4, Volatility: 0.005},
	{Name: "USDCNH", Price: 7.2500, Pip: pip4, Digits: 5, SpreadPips: 8, Volatility: 0.04},
	{Name: "EURSEK", Price: 11.393, Pip: pip4, Digits: 5, SpreadPips: 35, Volatility: 0.07},
	{Name: "EURNOK", Price: 11.610, Pip: pip4, Digits: 5, SpreadPips: 40, Volatility: 0.08},
	{Name: "EURDKK", Price: 7.4600, Pip: pip4, Digits: 5, SpreadPips: 8, Volatility: 0.005},
	{Name: "EURPLN", Price: 4.2858, Pip: pip4, Digits: 5, SpreadPips: 30, Volatility: 0.05},
	{Name: "EURHUF", Price: 390.60, Pip: pip2, Digits: 3, SpreadPips: 45, Volatility: 0.07},
	{Name: "EURCZK", Price: 24.955, Pip: pip3, Digits: 4, SpreadPips: 35, Volatility: 0.04},
	{Name: "EURTRY", Price: 34.720, Pip: pip4, Digits: 5, SpreadPips: 250, Volatility: 0.15},
	{Name: "EURZAR", Price: 20.073, Pip: pip4, Digits: 5, SpreadPips: 120, Volatility: 0.15},
}

// freeSymbols are the five most traded pairs, given away on the free tier to
// let a prospect see the product working on the symbols they know best.
var freeSymbols = []string{"EURUSD", "GBPUSD", "USDJPY", "EURGBP", "AUDUSD"}
